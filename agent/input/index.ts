export { makeTextLikeImage, makeClassifierCrop, type ImageTensor, type TextBox, type TextLikeImageOptions, type ClassifierCropOptions } from './synthetic-images.js'
export { paddleOcrModelPaths, type PaddleOcrModelPaths } from './paddleocr.js'
