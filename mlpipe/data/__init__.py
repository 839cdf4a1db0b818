"""Data logic on frames: built-in datasets, column roles, cleaning, splitting, features."""
