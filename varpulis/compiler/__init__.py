"""VPL compiler: AST to picklable plans and compiled Python callables."""
