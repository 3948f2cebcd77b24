"""Lake maintenance: retention and the disk guard, as an asset with checks."""
