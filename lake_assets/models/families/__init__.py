"""Model families: one module each, exporting `FAMILY` (an object implementing `families._base.Family`).

Adding a family = one module here + its name in spec/models/models.yaml `families`."""
