"""Export of search results and archival of expiring partitions, in JSON Lines, CSV or Parquet."""
