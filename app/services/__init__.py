"""Domain operations. They take a Session (and a BlobStore where blobs are involved); no Flask."""
