"""pyggy's log engine: streams → topics → partitions → segments, metadata and offsets."""
