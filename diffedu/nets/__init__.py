"""Networks, each called as `model(x_t, t, cond=None)` and declaring what it predicts
(`model.prediction`: "eps", "x0", "v" or "velocity"); import the module you need:

    mlp          MLPDenoiser: points (B, D), the model of the 2D chapters
    unet         the DDPM U-Net (Ho et al. 2020; Nichol & Dhariwal 2021) for small images
    dit          the Diffusion Transformer (Peebles & Xie 2023), four conditionings
    mmdit        the joint-attention transformer of Stable Diffusion 3 (Esser et al. 2024)
    transformer  the layers DiT and MMDiT share (timm's names)
    embeddings   timestep / label / 2D position embeddings
    classifier, autoencoder   noisy-image classifiers (guidance), a small (KL) autoencoder
    control      ControlNet (Zhang et al. 2023): a trainable encoder copy joined to a frozen U-Net by zero convs
    text         word tokenizer, text encoder, caption-conditional U-Net with cross-attention (TextUNet)
    features     `model.features(x_t, t, cond, layers)`: named activations of one forward pass
                 (MLP, U-Net, DiT, MMDiT; TextUNet also gives attn.<block> cross-attention maps; each docstring lists its names and shapes)
"""
