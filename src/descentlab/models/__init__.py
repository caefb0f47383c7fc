"""Networks (``mlp``, ``backbone``) and the LightningModule that trains them (``classifier``)."""
