"""Data quality: suites, the fast engine and Great Expectations, the gate, reports."""
