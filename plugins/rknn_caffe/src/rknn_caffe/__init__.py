"""rknn-caffe: the Caffe importer plugin (``load_caffe``) for the rknn toolkit."""

__version__ = "0.1.0"
