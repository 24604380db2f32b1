"""Query languages and evaluation over the store: PromQL, log search, traces."""
