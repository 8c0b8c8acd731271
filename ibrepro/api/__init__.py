"""The public Python API's implementation; use it through the names `ibrepro` exports."""
