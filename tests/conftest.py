"""Shared test helpers: which backends can run here, and the oracle comparison."""
import warnings

import pytest
import torch

import mx_dcn
from mx_dcn import registry
from mx_dcn.testing.cases import within_tolerance


def runnable_backends(device_type: str = "cpu"):
    """Names of the backends of `device_type`'s chain that are available on this machine."""
    return [name for name in registry.chain_for(device_type) if mx_dcn.get_backend(name).available()]


CPU_BACKENDS = runnable_backends("cpu")


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    """Runs the test once per available CPU backend, with that backend forced."""
    with mx_dcn.use_backend(request.param):
        yield request.param


def call(inputs, **args):
    """mx_dcn.modulated_deform_conv2d on a dict from Case.make_inputs, fallback warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return mx_dcn.modulated_deform_conv2d(inputs["x"], inputs["offset"], inputs["mask"], inputs["weight"],
                                              inputs["bias"], **args)


def assert_close_to(got, want, dtype, what):
    ok, err, allowed = within_tolerance(got, torch.as_tensor(want), dtype)
    assert ok, f"{what}: max error {err:.3e} > allowed {allowed:.3e} ({dtype})"
