"""Benchmark model definitions (PyTorch), shared by the bench scripts.

- resnet18 / resnet50 / resnet101: torchvision definitions (random weights; speed does not depend on them).
- replknet31b: the RepLKNet-31B shape in its deployed (re-parameterised) form: channels
  128/256/512/1024, depths 2/2/18/2, depthwise kernels 31/29/27/13 (one conv with bias after
  merging the parallel 5x5 branch and BN), ConvFFN with 4x expansion and GELU, BN before each
  block, stem and transitions as in the RepLKNet paper.
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
    else:
        raise ValueError(name)
    return randomise_bn(m).eval()
