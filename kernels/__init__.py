"""Vectorised kernels (numpy/numexpr); never imports varpulis."""
