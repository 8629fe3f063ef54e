"""The framework's own CUDA kernels (``.cu`` sources) and their CuPy loaders.

``conv`` (implicit-GEMM and depthwise convolution), ``pool`` (max/avg pooling), ``norm`` (batch
norm with fused statistics). Importing these modules never needs CuPy; calling them does.
``framework.kernels.kernel(...)`` dispatches CuPy arrays here.
"""
