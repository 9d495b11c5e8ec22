"""The training engine: the one loop (:mod:`.loop`), optimizers and the lr rules (:mod:`.optim`),
checkpoints (:mod:`.checkpoint`), the linear stage (:mod:`.linear`), metrics (:mod:`.logger`) and
the `supcon train` job that puts them together (:mod:`.train_job`). Import the modules directly."""
