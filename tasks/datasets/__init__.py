"""Training data: balanced, split and scaled datasets (Petastorm Parquet), TFRecord feeds and their tf.data readers."""
