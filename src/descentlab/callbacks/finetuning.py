"""Lightning's gradual unfreezing, aware of a backbone's fresh layers."""

from __future__ import annotations

from lightning.pytorch.callbacks import BackboneFinetuning as LightningBackboneFinetuning


class BackboneFinetuning(LightningBackboneFinetuning):
    """Lightning's ``BackboneFinetuning``: the backbone frozen until
    ``unfreeze_backbone_at_epoch``, then trained at ``backbone_initial_ratio_lr`` × the
    head's learning rate, rising each epoch (``lambda_func``) up to the head's.

    Two changes. The layers a net starts fresh (``model.net.fresh_layers``: random weights,
    nothing pretrained to protect) train from the first epoch, as the head does. Frozen
    with the rest, a random layer4 would sit between the pretrained features and the head
    as a fixed random projection until the unfreezing epoch. And a run resumed after the
    unfreezing epoch trains its backbone: every fit freezes the backbone first
    (``freeze_before_training``) and Lightning unfreezes it only at that exact epoch, so the
    resumed run got its parameter groups back but no gradients for them.
    """

    def freeze_before_training(self, pl_module) -> None:
        super().freeze_before_training(pl_module)
        net = getattr(pl_module, "net", None)
        fresh = net.fresh_modules() if hasattr(net, "fresh_modules") else []
        if fresh:
            self.make_trainable(fresh)

    def finetune_function(self, pl_module, epoch: int, optimizer) -> None:
        if epoch > self.unfreeze_backbone_at_epoch:  # a resume: unfrozen before it
            self.make_trainable(pl_module.backbone)
        super().finetune_function(pl_module, epoch, optimizer)
