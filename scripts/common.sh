# Shared by scripts/setup.sh and scripts/lock.sh (sourced, not run).

# The torch build installed where none is present: the CPU build where the machine provides
# one, so the project's looser `torch>=2.4` never pulls a multi-GB CUDA build.
# LLMFORGE_TORCH_SPEC overrides it (e.g. a CUDA build on a GPU machine). torch is not in
# requirements.lock: this spec is what pins it.
TORCH_SPEC="${LLMFORGE_TORCH_SPEC:-torch==2.13.0}"

# The exact versions every install is constrained to (see scripts/lock.sh).
LOCK_FILE=requirements.lock
