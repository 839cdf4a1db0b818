"""Learning logic on arrays: the metric table, training, promotion statistics, drift."""
