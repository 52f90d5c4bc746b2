"""`freeze_gate`: keep a mixture-of-experts model's routers fixed while the rest trains."""

from __future__ import annotations

# Router modules by exact name: Qwen2-MoE's `mlp.gate` and `mlp.shared_expert_gate`, Mixtral's
# `block_sparse_moe.gate`. An exact module-path component, not a substring: a dense MLP's `gate_proj` is no router.
ROUTER_MODULES = frozenset({"gate", "shared_expert_gate"})


def is_router_parameter(name: str) -> bool:
    """Whether the parameter `name` (dotted, as named_parameters gives it) lives inside a router module.

    Every module on its path counts, so adapters inside a router (`mlp.gate.lora_A.default.weight`) are router
    parameters too; the last component is the parameter's own name, not a module.
    """
    return not ROUTER_MODULES.isdisjoint(name.split(".")[:-1])


def freeze_routers(model) -> int:
    """Set requires_grad=False on every trainable router parameter; the number of elements frozen.

    Called before the Trainer is built, so the optimizer never holds them.
    """
    frozen = 0
    for name, param in model.named_parameters():
        if param.requires_grad and is_router_parameter(name):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen
