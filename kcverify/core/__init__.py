"""Standard-library-only primitives shared by the reference and the verifier: clocks, ids, errors."""
