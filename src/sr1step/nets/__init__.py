"""Networks (nn.Modules only: no optimizers, losses or data)."""
