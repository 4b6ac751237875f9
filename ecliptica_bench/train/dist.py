"""Several training processes (`accelerate launch`, `torchrun`): who writes, and how the processes agree.

Under a launcher every process runs `train()`; the data are sharded across them and DDP averages their
gradients. Only the main process (global rank 0) writes OUT: the run directory checks, train_config.json,
train_log.csv, adapter/, merged/, the held-out evaluation and summary.json. The others train and return.
Without a launcher there is one process, it is the main one, and nothing here synchronises anything.

The process group is the one the HF Trainer uses: `accelerate.PartialState` is a shared singleton, and
TrainingArguments re-creates it on top of the already initialised torch.distributed group (the CPU flag is
the same: CPU training when no CUDA device is visible; gloo on CPU, nccl on GPUs).
"""

from __future__ import annotations

from datetime import timedelta

from ..errors import EclipticaError

TIMEOUT = timedelta(seconds=1800)  # TrainingArguments' default ddp_timeout


def state():
    """accelerate's PartialState (process index, count, main-ness), initialising the process group if needed."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), timeout=TIMEOUT)


def on_main(fn, *args, **kwargs):
    """Run fn on the main process only; every process leaves together (a barrier).

    A failure on the main process reaches the others: an EclipticaError is raised there with the same
    message (so every process exits 2 with the same line), anything else as a RuntimeError naming it; the
    main process re-raises its own exception. Returns fn's result on the main process, None elsewhere."""
    st = state()
    result, error, failure = None, None, None
    if st.is_main_process:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the other processes below
            failure = exc
            error = (
                isinstance(exc, EclipticaError),
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, EclipticaError) else str(exc),
            )
    if st.use_distributed:
        import torch.distributed as torch_dist

        box = [error]
        torch_dist.broadcast_object_list(box, src=0)
        error = box[0]
    if failure is not None:
        raise failure
    if error is not None:
        user, message = error
        if user:
            raise EclipticaError(message)
        raise RuntimeError(f"the main training process failed: {message}")
    return result
