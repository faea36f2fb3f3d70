"""The official CycleGAN / pix2pix generators, re-implemented with identical state_dict keys.

Mirrors ``ResnetGenerator`` (``resnet_9blocks``, ``resnet_6blocks``) and ``UnetGenerator``
(``unet_256``, ``unet_128``) of junyanz/pytorch-CycleGAN-and-pix2pix, including its quirks
(the bias of a conv depends on the norm layer; with ``norm="none"`` convs have no bias), so
that checkpoints trained there load strictly without cloning that repository. torch is
imported lazily: only export and the fixture builder need it.
"""

from __future__ import annotations

from dataclasses import dataclass

NORMS = ("instance", "instance_affine", "batch", "none")


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything needed to rebuild a generator: what auto-detection finds in a state_dict."""

    arch: str  # resnet_<n>blocks or unet_<size>
    ngf: int = 64
    norm: str = "instance"
    use_dropout: bool = False
    input_nc: int = 3
    output_nc: int = 3

    @property
    def family(self) -> str:
        return "resnet" if self.arch.startswith("resnet_") else "unet"

    @property
    def depth(self) -> int:
        """Residual blocks of a ResNet, down-samplings of a U-Net."""
        if self.family == "resnet":
            return int(self.arch[len("resnet_"):-len("blocks")])
        return int(self.arch[len("unet_"):]).bit_length() - 1

    def describe(self) -> str:
        return f"{self.arch}, ngf {self.ngf}, norm {self.norm}, dropout {'on' if self.use_dropout else 'off'}"


def _norm_factory(norm: str):
    import torch.nn as nn

    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False), True
    if norm == "instance_affine":
        return lambda c: nn.InstanceNorm2d(c, affine=True, track_running_stats=False), True
    if norm == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True), False
    if norm == "none":
        return lambda c: nn.Identity(), False  # the official code gives convs no bias here
    raise ValueError(f"unknown norm {norm!r} (expected one of {', '.join(NORMS)})")


def build_generator(spec: GeneratorSpec):
    if spec.family == "resnet":
        return ResnetGenerator(spec.input_nc, spec.output_nc, spec.ngf, spec.norm, spec.use_dropout, spec.depth)
    return UnetGenerator(spec.input_nc, spec.output_nc, spec.depth, spec.ngf, spec.norm, spec.use_dropout)


def ResnetGenerator(input_nc=3, output_nc=3, ngf=64, norm="instance", use_dropout=False, n_blocks=9,
                    upsample="deconv"):
    """The official ResNet generator. ``upsample="bilinear"`` replaces each ConvTranspose2d by
    bilinear Upsample + Conv2d (a common variant; it produces Resize nodes)."""
    import torch.nn as nn

    norm_layer, use_bias = _norm_factory(norm)

    class ResnetBlock(nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim), nn.ReLU(True)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim)]
            self.conv_block = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv_block(x)

    class ResnetGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=use_bias), norm_layer(ngf), nn.ReLU(True)]
            for i in range(2):
                mult = 2**i
                layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                           norm_layer(ngf * mult * 2), nn.ReLU(True)]
            layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
            for i in range(2):
                c = ngf * 2 ** (2 - i)
                if upsample == "deconv":
                    layers.append(nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1,
                                                     bias=use_bias))
                elif upsample == "bilinear":
                    layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                               nn.Conv2d(c, c // 2, 3, padding=1, bias=use_bias)]
                else:
                    raise ValueError(f"unknown upsample {upsample!r}")
                layers += [norm_layer(c // 2), nn.ReLU(True)]
            layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            return self.model(x)

    return ResnetGenerator()


def UnetGenerator(input_nc=3, output_nc=3, num_downs=8, ngf=64, norm="batch", use_dropout=False):
    """The official U-Net generator: ``num_downs`` 8 is ``unet_256``, 7 is ``unet_128``."""
    import torch
    import torch.nn as nn

    norm_layer, use_bias = _norm_factory(norm)

    class UnetSkipConnectionBlock(nn.Module):
        def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                     dropout=False):
            super().__init__()
            self.outermost = outermost
            input_nc = outer_nc if input_nc is None else input_nc
            downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
            downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
            if outermost:
                upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
                model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
            elif innermost:
                upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
                model = [downrelu, downconv, uprelu, upconv, norm_layer(outer_nc)]
            else:
                upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias)
                model = [downrelu, downconv, norm_layer(inner_nc), submodule, uprelu, upconv, norm_layer(outer_nc)]
                if dropout:
                    model.append(nn.Dropout(0.5))
            self.model = nn.Sequential(*model)

        def forward(self, x):
            if self.outermost:
                return self.model(x)
            return torch.cat([x, self.model(x)], 1)

    class UnetGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True)
            for _ in range(num_downs - 5):
                block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, dropout=use_dropout)
            block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block)
            block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block)
            block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block)
            self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

        def forward(self, x):
            return self.model(x)

    return UnetGenerator()


def build_resnet_generator(ngf=64, n_blocks=9, input_nc=3, output_nc=3, norm="instance", use_dropout=False,
                           upsample="deconv"):
    """Kept for the fixture builder: the ResNet generator by its parameters."""
    return ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks, upsample)
