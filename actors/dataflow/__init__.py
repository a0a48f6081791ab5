"""Ray Data stages and Ray tasks: reading and selecting seeds, assembling task blocks, the
generation stage's pool and its shard writer, finalise and the distributed dataset build."""
