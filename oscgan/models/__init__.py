"""Networks and loading: our own StyleGAN2/StyleGAN3 generators and safe file readers."""
