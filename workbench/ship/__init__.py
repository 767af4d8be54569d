"""Shipping a trained model: merge an adapter into its base, write a model card, export GGUF and a Modelfile,
and list every model of a workspace (the Models pane's inventory)."""
