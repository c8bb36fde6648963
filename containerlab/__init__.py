"""containerlab schema, committed exports and image build files: package data of ``cnilab.containerlab``."""
