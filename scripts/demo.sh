#!/bin/sh
# make demo: the end-to-end demonstration. The pipeline (phantom data, pretraining,
# scoring, selection) is not in this release yet; until it lands this says so plainly.
set -u
echo "libcsal3d $(bin/csal3d --version | awk '{print $2}') is built (bin/csal3d, lib/libcsal3d.so)."
bin/csal3d info
echo
echo "make demo: the end-to-end demo (phantom dataset -> pretrain -> score -> select)"
echo "is not there yet: it arrives with the pipeline. Today the library provides the"
echo "context, errors and runtime; see docs/guide.md for what works."
