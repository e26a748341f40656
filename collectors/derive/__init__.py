"""The derive stage: mergeable per-bucket facts → windows, history steps and daily values.

The store folds every root-dns record, when it enters, into per-bucket sums
(``publiccore.store.facts``: one-minute buckets per country × probe ASN × source × letter ×
family × transport). This package merges buckets into the figures of docs/methodology.md: a live
window, a history step, a day. M-sampling's per-ASN weights are applied here, when buckets are
merged, so every figure stays as defined. The cost of a window grows with the buckets and cells
in it, never with the number of raw records.
"""
