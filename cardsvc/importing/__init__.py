"""Importing member lists from spreadsheet and CSV files: reading the file, then validating each row."""
