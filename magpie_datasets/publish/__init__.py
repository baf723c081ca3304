"""Publishing: `statistics` (what a card says about the rows), `plots` (its figures),
`card` (the README) and `hub` (the Hub repository layout)."""
