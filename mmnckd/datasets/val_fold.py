"""The ``val_fold`` check shared by the datasets with a validation split."""


def check_val_fold(val_fold, block: int, total: int, unit: str) -> None:
    """Raise unless ``val_fold`` picks a held-out block inside the training
    data.

    Fold ``f`` holds out the ``f``-th block of ``block`` items counted from
    the end of ``total`` training items, so the largest fold that still
    leaves at least one item to train on is ``(total - 1) // block - 1``;
    without a validation block (``block == 0``) only fold 0 exists.

    Args:
        val_fold: The fold asked for.
        block (int): Items per held-out block (``val_drawers``,
            ``num_val_per_class``); 0 for no validation split.
        total (int): Training items the blocks are taken from.
        unit (str): How the error names the block, e.g.
            ``'val_drawers=2 drawers'``.
    """
    max_fold = (total - 1) // block - 1 if block else 0
    if (isinstance(val_fold, bool) or not isinstance(val_fold, int)
            or not 0 <= val_fold <= max_fold):
        raise ValueError(
            f'val_fold must be an int in 0..{max_fold} (blocks of {unit} '
            f'that leave at least one of the {total} training items to '
            f'train on), got {val_fold!r}.')
