"""The official CycleGAN ResNet generator, re-implemented with identical state_dict keys.

Mirrors ``ResnetGenerator`` of junyanz/pytorch-CycleGAN-and-pix2pix (``resnet_9blocks`` /
``resnet_6blocks``) so that its checkpoints load without cloning that repository. torch is
imported lazily: only export and the fixture builder need it.
"""

from __future__ import annotations


def build_resnet_generator(
    ngf: int = 64,
    n_blocks: int = 9,
    input_nc: int = 3,
    output_nc: int = 3,
    norm: str = "instance",
    use_dropout: bool = False,
    upsample: str = "deconv",
):
    """Return the official ResNet generator as ``nn.Module`` (attribute ``model``).

    ``upsample="bilinear"`` replaces each ConvTranspose2d with bilinear Upsample + Conv2d
    (a common variant; it produces the Resize nodes that ``resize-nearest`` rewrites).
    """
    import torch.nn as nn

    if norm == "instance":
        def norm_layer(c):
            return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    elif norm == "batch":
        def norm_layer(c):
            return nn.BatchNorm2d(c, affine=True, track_running_stats=True)
    else:
        raise ValueError(f"unknown norm {norm!r} (expected instance or batch)")
    use_bias = norm == "instance"

    class ResnetBlock(nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias),
                      norm_layer(dim), nn.ReLU(True)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim)]
            self.conv_block = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv_block(x)

    class ResnetGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=use_bias),
                      norm_layer(ngf), nn.ReLU(True)]
            for i in range(2):
                mult = 2 ** i
                layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                           norm_layer(ngf * mult * 2), nn.ReLU(True)]
            layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
            for i in range(2):
                c = ngf * 2 ** (2 - i)
                if upsample == "deconv":
                    layers.append(nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1,
                                                     output_padding=1, bias=use_bias))
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
