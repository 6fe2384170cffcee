"""Benchmark model definitions (PyTorch), shared by the bench scripts.

- resnet18 / resnet50 / resnet101: torchvision definitions (random weights; speed does not depend on them).
- replknet31b: the RepLKNet-31B shape in its deployed (re-parameterised) form: channels
  128/256/512/1024, depths 2/2/18/2, depthwise kernels 31/29/27/13 (one conv with bias after
  merging the parallel 5x5 branch and BN), ConvFFN with 4x expansion and GELU, BN before each
  block, stem and transitions as in the RepLKNet paper.
- slak51: a small SLaK-style network (Liu et al., SLaK, ICLR 2023) in SLaK's own form: a
  ConvNeXt macro design (4x4 stride-4 stem, 2x2 stride-2 downsampling) whose depthwise
  kernels are 51/49/47/13 per stage, each decomposed as SLaK does (`Decom=True` in SLaK's
  ReparamLargeKernelConv): two parallel rectangular depthwise convs K x 5 and 5 x K plus a
  5 x 5 depthwise conv, each followed by BN, summed; then BN, a pointwise MLP (4x, GELU) and a
  residual.  BN stands in for LayerNorm (the engine folds it); channels 32/64/128/256 and
  depths 1/1/2/1 keep a 1024x1024 run at a few seconds per image.
- slak51m: the same network deployed: the three parallel branches of each large kernel (and
  their BN) merged into one K x K depthwise conv with bias, as RepLKNet-style
  re-parameterisation builds it (random weights: the speed does not depend on them).
"""
import torch
import torch.nn as nn
import torchvision


def conv_bn_relu(cin, cout, k, s=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RepLKBlock(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.pre_bn = nn.BatchNorm2d(c)
        self.pw1 = conv_bn_relu(c, c, 1)
        self.large = nn.Conv2d(c, c, k, 1, k // 2, groups=c, bias=True)  # deployed 31x31 (+5x5 merged)
        self.act = nn.ReLU()
        self.pw2 = conv_bn_relu(c, c, 1, relu=False)

    def forward(self, x):
        return x + self.pw2(self.act(self.large(self.pw1(self.pre_bn(x)))))


class ConvFFN(nn.Module):
    def __init__(self, c, ratio=4):
        super().__init__()
        self.pre_bn = nn.BatchNorm2d(c)
        self.pw1 = conv_bn_relu(c, c * ratio, 1, relu=False)
        self.act = nn.GELU()
        self.pw2 = conv_bn_relu(c * ratio, c, 1, relu=False)

    def forward(self, x):
        return x + self.pw2(self.act(self.pw1(self.pre_bn(x))))


class RepLKNet(nn.Module):
    def __init__(self, channels=(128, 256, 512, 1024), depths=(2, 2, 18, 2),
                 kernels=(31, 29, 27, 13), num_classes=1000, features_only=False):
        super().__init__()
        c0 = channels[0]
        self.stem = nn.Sequential(conv_bn_relu(3, c0, 3, 2), conv_bn_relu(c0, c0, 3, groups=c0),
                                  conv_bn_relu(c0, c0, 1), conv_bn_relu(c0, c0, 3, 2, groups=c0))
        stages = []
        for i, (c, d, k) in enumerate(zip(channels, depths, kernels)):
            blocks = []
            for _ in range(d):
                blocks += [RepLKBlock(c, k), ConvFFN(c)]
            stages.append(nn.Sequential(*blocks))
            if i + 1 < len(channels):
                stages.append(nn.Sequential(conv_bn_relu(c, channels[i + 1], 1),
                                            conv_bn_relu(channels[i + 1], channels[i + 1], 3, 2,
                                                         groups=channels[i + 1])))
        self.stages = nn.Sequential(*stages)
        self.features_only = features_only
        self.norm = nn.BatchNorm2d(channels[-1])
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        if self.features_only:
            return x
        x = self.norm(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class SLaKConv(nn.Module):
    """SLaK's decomposed large kernel: K x s, s x K and s x s depthwise branches, BN each
    (merged = True: the deployed single K x K depthwise conv with bias)."""

    def __init__(self, c, k, small=5, merged=False):
        super().__init__()
        self.merged = merged
        if merged:
            self.conv = nn.Conv2d(c, c, k, 1, k // 2, groups=c, bias=True)
            return

        def dw_bn(kh, kw):
            return nn.Sequential(nn.Conv2d(c, c, (kh, kw), 1, (kh // 2, kw // 2), groups=c,
                                           bias=False), nn.BatchNorm2d(c))
        self.lora1 = dw_bn(k, small)
        self.lora2 = dw_bn(small, k)
        self.small = dw_bn(small, small)

    def forward(self, x):
        if self.merged:
            return self.conv(x)
        return self.lora1(x) + self.lora2(x) + self.small(x)


class SLaKBlock(nn.Module):
    def __init__(self, c, k, merged=False):
        super().__init__()
        self.large = SLaKConv(c, k, merged=merged)
        self.norm = nn.BatchNorm2d(c)
        self.pw1 = nn.Conv2d(c, 4 * c, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(4 * c, c, 1)

    def forward(self, x):
        return x + self.pw2(self.act(self.pw1(self.norm(self.large(x)))))


class SLaK(nn.Module):
    def __init__(self, channels=(32, 64, 128, 256), depths=(1, 1, 2, 1), kernels=(51, 49, 47, 13),
                 num_classes=1000, features_only=False, merged=False):
        super().__init__()
        layers = [nn.Conv2d(3, channels[0], 4, 4), nn.BatchNorm2d(channels[0])]
        for i, (c, d, k) in enumerate(zip(channels, depths, kernels)):
            if i > 0:
                layers += [nn.BatchNorm2d(channels[i - 1]), nn.Conv2d(channels[i - 1], c, 2, 2)]
            layers += [SLaKBlock(c, k, merged) for _ in range(d)]
        self.features = nn.Sequential(*layers)
        self.features_only = features_only
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, x):
        x = self.features(x)
        if self.features_only:
            return x
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def build(name, features_only=False):
    torch.manual_seed(0)
    if name == "resnet18":
        m = torchvision.models.resnet18()
    elif name == "resnet50":
        m = torchvision.models.resnet50()
    elif name == "resnet101":
        m = torchvision.models.resnet101()
        if features_only:
            m = nn.Sequential(*list(m.children())[:-2])
    elif name == "replknet31b":
        m = RepLKNet(features_only=features_only)
    elif name == "slak51":
        m = SLaK(features_only=features_only)
    elif name == "slak51m":
        m = SLaK(features_only=features_only, merged=True)
    else:
        raise ValueError(name)
    return randomise_bn(m).eval()
