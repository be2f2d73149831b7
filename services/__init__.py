"""The four hybridq processes. They import `shared`, never each other."""
