"""The toy sample generator: QCD, tt̄ and W+jets written as Delphes-schema ROOT files."""
