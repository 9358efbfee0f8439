"""The lab: the record of a grid's runs, its tables, verdicts and figures, and the statistics behind them."""
