"""Target models: what a target model is, the registry of model families and their loaders,
the pretrained pitch models, training the project's AST, and recording activations."""
