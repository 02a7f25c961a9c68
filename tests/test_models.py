"""The PyTorch architectures (seed 003 appendix C, seed 002 sec. 3) and the measured receptive field."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from emdenoise.export.torch_export import receptive_field  # noqa: E402
from emdenoise.models import FAMILIES, build_model, count_parameters  # noqa: E402
from emdenoise.models.ede_mlp import KernelMLP  # noqa: E402

# Seed 003, Table 2: parameters of the SBD networks.
PAPER_PARAMETERS = [
    ({"family": "sbd-unet", "width": 32}, 352_000),
    ({"family": "sbd-unet", "width": 64}, 1_410_000),
    ({"family": "sbd-unet", "width": 128}, 5_610_000),
    ({"family": "dncnn"}, 668_000),
    ({"family": "durr-unet"}, 233_000),
]


@pytest.mark.parametrize("spec, paper", PAPER_PARAMETERS, ids=lambda v: str(v))
def test_parameter_counts_match_seed_003_table_2(spec, paper):
    assert count_parameters(build_model(spec)) == pytest.approx(paper, rel=0.005)


def test_mlp_parameter_counts_follow_seed_002_fig_3():
    w = 5
    assert count_parameters(KernelMLP(w, 0)) == w**2
    # w^2 weights per input pixel and hidden unit, w^2 biases, w^2 output weights.
    assert count_parameters(KernelMLP(w, 1)) == w**4 + w**2 + w**2
    assert count_parameters(KernelMLP(w, 2)) == 2 * w**4 + 2 * w**2 + w**2


@pytest.mark.parametrize(
    "spec, shape",
    [
        ({"family": "sbd-unet", "width": 4}, (2, 1, 48, 80)),
        ({"family": "dncnn", "depth": 4, "width": 8}, (1, 1, 23, 37)),
        ({"family": "durr-unet"}, (1, 1, 30, 42)),
        ({"family": "ede-mlp", "size": 7, "hidden": 2}, (3, 1, 19, 11)),
    ],
)
def test_every_family_keeps_the_image_shape(spec, shape):
    assert spec["family"] in FAMILIES
    with torch.no_grad():
        out = build_model(spec).eval()(torch.rand(*shape))
    assert out.shape == shape


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown model family"):
        build_model({"family": "resnet"})


def test_kernel_mlp_valid_padding_predicts_only_interior_pixels():
    net = KernelMLP(5, 1, pad=False)
    assert net(torch.rand(1, 1, 20, 20)).shape == (1, 1, 16, 16)
    net.set_padding(True)
    assert net(torch.rand(1, 1, 20, 20)).shape == (1, 1, 20, 20)
    with pytest.raises(ValueError, match="odd"):
        KernelMLP(4)


def test_dncnn_is_residual_and_unet_is_not():
    x = torch.rand(1, 1, 16, 16)
    dncnn = build_model({"family": "dncnn", "depth": 3, "width": 4}).eval()
    torch.nn.init.zeros_(dncnn.body[-1].weight)  # no predicted noise -> identity
    assert torch.equal(dncnn(x), x)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"family": "ede-mlp", "size": 7, "hidden": 1}, 7),
        ({"family": "dncnn", "depth": 20, "width": 4}, 41),  # seed 003, Table 2: 41 x 41
        ({"family": "durr-unet"}, 47),  # Table 2 says 45; the transposed conv adds 2
        ({"family": "sbd-unet", "width": 2, "scales": 2}, 53),
    ],
)
def test_receptive_field_is_measured(spec, expected):
    torch.manual_seed(0)
    assert receptive_field(build_model(spec)) == expected


def test_receptive_field_bounds_what_an_output_pixel_sees():
    """Pixels just outside the measured field cannot change the centre output; just inside they do."""
    torch.manual_seed(0)
    net = build_model({"family": "dncnn", "depth": 5, "width": 4}).eval()
    radius = receptive_field(net) // 2
    x = torch.rand(1, 1, 41, 41)
    centre = 20
    with torch.no_grad():
        base = net(x)[0, 0, centre, centre]
        outside, inside = x.clone(), x.clone()
        outside[0, 0, centre, centre + radius + 1] += 5.0
        inside[0, 0, centre, centre + radius] += 5.0
        assert net(outside)[0, 0, centre, centre] == base
        assert net(inside)[0, 0, centre, centre] != base


def test_unet_field_grows_with_scales():
    torch.manual_seed(0)
    fields = [receptive_field(build_model({"family": "sbd-unet", "width": 2, "scales": s})) for s in (1, 2, 3)]
    assert fields[0] < fields[1] < fields[2]
