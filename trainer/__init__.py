"""The trainer: ``python -m trainer <family> --data DIR`` trains a model
family from a public dataset and writes a bundle plus a report."""
