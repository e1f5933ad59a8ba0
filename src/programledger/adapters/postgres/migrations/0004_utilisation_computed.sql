-- Utilisation per resource and ISO week is computed when asked, from the allocations and
-- resources read models (projections/allocations.py); the table that stored it, created
-- by the allocations projection of earlier releases, is no longer written or read.

DROP TABLE IF EXISTS rm_utilisation;
DROP TABLE IF EXISTS rm_utilisation__rebuild;
