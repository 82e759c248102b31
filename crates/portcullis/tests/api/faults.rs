//! Faults on the real binary (issue 20). Run by `scripts/faults` (a step of `.ci/run`).
