// The VMM's snapshot identities and checksums are SHA-256 digests; its users name them too.
@_exported import Digest
