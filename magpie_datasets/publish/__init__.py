"""Publishing: dataset cards (statistics, plots, rendering) and the Hub repository layout."""
