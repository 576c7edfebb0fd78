"""One module per CLI stage; see ser_pipeline.cli."""
