"""A small SLAYER CUBA network (Dense and Conv blocks) trains: forward, backward, one optimizer step."""

from __future__ import annotations

import torch

import snndeploy  # noqa: F401


def test_cuba_dense_and_conv_blocks_forward_backward_step():
    from lava.lib.dl import slayer

    torch.manual_seed(0)
    neuron = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03, "tau_grad": 0.03, "scale_grad": 3,
              "requires_grad": False}
    blocks = torch.nn.ModuleList([
        slayer.block.cuba.Conv(neuron, 2, 4, 3, stride=2, padding=1, weight_scale=2, weight_norm=True),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(neuron, 4 * 5 * 5, 10, weight_scale=2, weight_norm=True),
    ])
    x = (torch.rand(3, 2, 10, 10, 12) < 0.3).float()  # N, C, H, W, T
    target = torch.tensor([1, 4, 7])
    optimizer = torch.optim.Adam(blocks.parameters(), lr=0.01)
    loss_fn = slayer.loss.SpikeRate(true_rate=0.5, false_rate=0.05, reduction="sum")

    out = x
    for block in blocks:
        out = block(out)
    assert out.shape == (3, 10, 12)
    loss = loss_fn(out, target)
    loss.backward()
    conv_grad = blocks[0].synapse.weight_v.grad
    dense_grad = blocks[2].synapse.weight_v.grad
    assert conv_grad is not None and conv_grad.abs().sum() > 0
    assert dense_grad is not None and dense_grad.abs().sum() > 0
    before = blocks[2].synapse.weight_v.detach().clone()
    optimizer.step()
    assert not torch.equal(before, blocks[2].synapse.weight_v.detach())
