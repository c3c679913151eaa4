"""The built-in models of the zoo; importing this package registers them.

==============  ===========================================================
name            model
==============  ===========================================================
``mlp``         fully connected network, ``widths=[inputs, hidden..., outputs]``
``lenet300``    LeNet-300-100
``lenet5``      LeNet-5, Caffe variant
``cnn1d``       1-D CNN for MNIST-1D
``vgg_small``   VGG with BatchNorm (small CIFAR config, or VGG-11/13/16/19)
``resnet``      CIFAR ResNet-(6n+2) with projection shortcuts
``mobilenet_v1`` MobileNet v1 with width and resolution multipliers
``enet``        ENet for semantic segmentation
==============  ===========================================================
"""

from workbench.zoo.models import cnn1d, enet, lenet5, mlp, mobilenet, resnet, vgg  # noqa: F401

__all__ = ["cnn1d", "enet", "lenet5", "mlp", "mobilenet", "resnet", "vgg"]
