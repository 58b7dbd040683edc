"""The upstream [NodeConformance] runner (make conformance) and its pure helpers.
Not part of make test."""
