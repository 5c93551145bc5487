"""Benchmarks of the portal (`make bench`): each compares the portal with a baseline measured in
the same run, because on a shared machine absolute times drift while ratios hold."""
