/**
 * engram — find where a transformer language model keeps a fact, explain it and edit it, on any GPU
 * WebGPU reaches. This module is the library entry point.
 *
 * @example
 * ```ts
 * import { loadModel } from "./mod.ts";
 * const lm = await loadModel("fixtures/models/fake-gpt2");
 * const ids = lm.tokenizer!.encode("The Eiffel Tower is in");
 * const { logprobs, captured } = await lm.model.forward([ids], { hooks: { capture: ["mlp_post.0"] } });
 * ```
 */
export * from "./src/errors.ts";
export { getGpu, Gpu } from "./src/gpu/device.ts";
export type { AdapterDescription } from "./src/gpu/device.ts";
export { createTensor, GpuTensor, readTensor, writeTensor } from "./src/gpu/tensor.ts";
export type {
  Activation,
  Family,
  HostTensor,
  ModelConfig,
  ParallelResidual,
  ResolvedConfig,
  Undecoded16,
  WeightMap,
} from "./src/model/config.ts";
export { resolveConfig } from "./src/model/config.ts";
export { FAMILIES, familySpec, weightShapes } from "./src/model/families/mod.ts";
export type { FamilySpec, LayerSpec, LinearLayout, LinearSpec, NormSpec } from "./src/model/families/mod.ts";
export type { RopeConfig, RopeScaling } from "./src/model/rope.ts";
export { blockedQkvLayout, neoxQkvLayout } from "./src/gpu/attention.ts";
export type { QkvLayout } from "./src/gpu/attention.ts";
export type { GpuWeightRef } from "./src/model/transformer.ts";
export { TransformerModel } from "./src/model/transformer.ts";
export type { ForwardOptions, ForwardResult } from "./src/model/transformer.ts";
export { hookSiteNames, siteWidth } from "./src/model/hooks.ts";
export type { EditSpec, Hooks, PatchSpec, SiteTensor } from "./src/model/hooks.ts";
export { loadModel } from "./src/model/load.ts";
export type { LoadedModel, LoadedModelWithTokenizer, LoadModelOptions } from "./src/model/load.ts";
export { argmax, logSoftmaxInto, logSumExp } from "./src/numeric/mod.ts";
export { generate, pickToken } from "./src/model/generate.ts";
export type { GenerateOptions, GenerateResult } from "./src/model/generate.ts";
export { KvCache } from "./src/gpu/kv_cache.ts";
export type { KvLayer } from "./src/gpu/kv_cache.ts";
export { logitLens } from "./src/locate/logit_lens.ts";
export type { LensTarget, LogitLensOptions, LogitLensResult } from "./src/locate/logit_lens.ts";
export { logitLensSvg } from "./src/report/logit_lens.ts";
export { evaluateEdit } from "./src/evaluate/evaluate_edit.ts";
export type { EditEvaluation } from "./src/evaluate/evaluate_edit.ts";
export { saveModel } from "./src/model/save.ts";
export type { SaveModelOptions } from "./src/model/save.ts";
export { modelEditOptions } from "./src/edit/model_options.ts";
export { readHparamsFile } from "./src/edit/hparams.ts";
export { declaredStatsCorpus } from "./src/edit/stats.ts";
export type { LogitLensSvgOptions } from "./src/report/logit_lens.ts";
export { randomConfig, randomGPT2 } from "./src/model/random.ts";
export { loadHFModel, saveHFModel } from "./src/io/hf_model.ts";
export { loadTokenizer } from "./src/io/tokenizer.ts";
export type { Tokenizer } from "./src/io/tokenizer.ts";
export * from "./src/prompt/mod.ts";
export {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from "./src/io/safetensors.ts";
export { gpt2ForwardRef } from "./src/reference/gpt2.ts";
export { applyEdit, editorNames, EDITORS, getEditor } from "./src/edit/editors.ts";
export { applyDeltas, hostWeights, modelWeights, restoreWeights } from "./src/edit/apply.ts";
export type {
  AppliedEdit,
  EditDeltas,
  EditOptions,
  Editor,
  EditResult,
  WeightTarget,
} from "./src/edit/apply.ts";
export { parseRequests, readRequests } from "./src/prompt/requests.ts";
export type { EditRequest, PromptAnswer } from "./src/prompt/requests.ts";
export { memitDefaults, romeDefaults } from "./src/edit/hparams.ts";
export { alphaEditCompute, alphaEditEditor, resetAlphaEditState } from "./src/edit/alphaedit.ts";
export type { AlphaEditLayerState, AlphaEditState } from "./src/edit/alphaedit.ts";
export { ALPHAEDIT_FILES, alphaEditDefaults, mergeAlphaEditHparams } from "./src/edit/alphaedit_hparams.ts";
export type { AlphaEditHparams } from "./src/edit/alphaedit_hparams.ts";
export { alphaEditStateFile, priorAlphaEditState, readAlphaEditState } from "./src/edit/alphaedit_state.ts";
export type { AlphaEditStateExpect, AlphaEditStateInfo } from "./src/edit/alphaedit_state.ts";
export { emmetEditor } from "./src/edit/emmet.ts";
export { EMMET_FILES, emmetDefaults, mergeEmmetHparams } from "./src/edit/emmet_hparams.ts";
export type { EmmetHparams } from "./src/edit/emmet_hparams.ts";
export { symmetricEigen } from "./src/edit/eigen.ts";
export { layerStats } from "./src/edit/stats.ts";
export { readEditLog, revertWeights, writeEditLog } from "./src/edit/log.ts";
export {
  fineTune,
  FT_GPT2_XL,
  ftDefaults,
  ftEditor,
  FTL_GPT2_XL,
  ftlDefaults,
  ftlEditor,
  mergeFtHparams,
} from "./src/edit/ft.ts";
export type { FtHparams, FtInfo } from "./src/edit/ft.ts";
export { knDefaults, knEdit, mergeKnHparams } from "./src/edit/kn.ts";
export type { KnHparams, KnRequestInfo } from "./src/edit/kn.ts";
export {
  aggregate,
  agreement,
  evaluateMethod,
  evaluateRequests,
  METRIC_NAMES,
  nGramEntropy,
  preEditState,
  scoreAnswers,
  wordTokenize,
} from "./src/evaluate/edit_metrics.ts";
export type {
  CaseScores,
  EditMode,
  MethodEvalOptions,
  MethodEvalResult,
  Metrics,
} from "./src/evaluate/edit_metrics.ts";
export { aggregateWild, WILD_METRIC_NAMES } from "./src/evaluate/edit_metrics.ts";
export type { WildScores } from "./src/evaluate/edit_metrics.ts";
export { modelFingerprint, runSequential } from "./src/evaluate/sequential.ts";
export type { SequentialCurve, SequentialOptions, SequentialRecord } from "./src/evaluate/sequential.ts";
export { perplexity, readPerplexityText } from "./src/evaluate/perplexity.ts";
export { wildAnswers } from "./src/evaluate/wild.ts";
export { nasRescale } from "./src/edit/nas.ts";
export { curveSvgs, linePlotSvg } from "./src/report/curves.ts";
export {
  DEFAULT_COLUMNS,
  markdownTable,
  resultsJson,
  writeResultsJson,
  writeTable,
} from "./src/evaluate/report.ts";
export {
  coarseNeurons,
  faithfulness,
  igAlphas,
  integratedGradients,
  maskedLogprobs,
  maskedProbs,
  neuronMask,
  poolBlockStats,
  poolFaithfulness,
  rankNeurons,
  refineNeurons,
  suppressAmplify,
} from "./src/attribute/neurons.ts";
export type {
  BlockStats,
  FaithfulnessResult,
  FaithfulnessRow,
  IgActivation,
  IgOptions,
  IgPoints,
  Neuron,
  NeuronAttribution,
  RefineOptions,
  ScaleReport,
  SharedNeuron,
} from "./src/attribute/neurons.ts";
export {
  defaultIaParams,
  exampleGradients,
  forEachExampleGradient,
  IA_METHODS,
  instanceScores,
  listCheckpoints,
  promptExample,
  topK,
  trainingExample,
} from "./src/attribute/instances.ts";
export type { Checkpoint, GradExample, IaMethod, IaOptions } from "./src/attribute/instances.ts";
export {
  iaNeurons,
  jaccard,
  naInstanceScores,
  neuronJaccard,
  spearman,
  zScores,
} from "./src/attribute/bridges.ts";
export type { NaInstanceOptions } from "./src/attribute/bridges.ts";
export { candidateNeurons, finetuneAndScore, finetuneStudy, overlapStudy } from "./src/attribute/study.ts";
export type {
  FinetuneOptions,
  FinetuneRow,
  OverlapRow,
  StudyOptions,
  TestCase,
} from "./src/attribute/study.ts";
export {
  runLocalizationStudy,
  STUDY_DEFAULTS as LOCALIZATION_STUDY_DEFAULTS,
} from "./src/evaluate/localization/study.ts";
export type { LocalizationStudyOptions, LocalizationStudyResult } from "./src/evaluate/localization/study.ts";
export { studyCase } from "./src/evaluate/localization/case.ts";
export type {
  CaseResult as LocalizationCaseResult,
  CaseSettings,
  DroppedCase,
} from "./src/evaluate/localization/case.ts";
export { EMBEDDING_LAYER, OBJECTIVES, STUDY_METHODS } from "./src/evaluate/localization/objectives.ts";
export type { Objective, StudyMethod } from "./src/evaluate/localization/objectives.ts";
export { fineTuneObjective } from "./src/evaluate/localization/ft_objective.ts";
export { harmonicMean, neighborhoodScore, rewriteScore } from "./src/evaluate/localization/scores.ts";
export {
  fSurvival,
  fTest,
  incompleteBeta,
  localizationRegression,
  ols,
} from "./src/evaluate/localization/regression.ts";
export type { LocalizationRegression, OlsFit } from "./src/evaluate/localization/regression.ts";
export { StudyModelMismatchError, StudySettingsMismatchError } from "./src/evaluate/localization/folder.ts";
export type { StudySummary } from "./src/evaluate/localization/summary.ts";
export {
  captureRun,
  corruptionHooks,
  corruptionPatch,
  embeddingRow,
  embeddingStd,
  NOISE_RNGS,
  patchActivations,
  sitePatchSpecs,
  subjectNoise,
} from "./src/locate/patching.ts";
export type { NoiseRng, PatchResult, RunSpec, SitePatch } from "./src/locate/patching.ts";
export { SubjectNoiser } from "./src/locate/subject_noiser.ts";
export type { NoisedRow, SubjectNoiseSpec } from "./src/locate/subject_noiser.ts";
export { NumpyRandomState } from "./src/locate/numpy_random.ts";
export { greedyContinuation, greedyLength, KNOWN_RULES, knownByRule } from "./src/locate/known.ts";
export type { KnownRule } from "./src/locate/known.ts";
export { causalTrace, kindSite, TRACE_KINDS, windowLayers } from "./src/locate/trace.ts";
export type { KindTrace, TargetProb, TraceKind, TraceOptions, TraceResult } from "./src/locate/trace.ts";
export { causalTraceRef } from "./src/locate/trace_ref.ts";
export { CORRUPTION_KINDS, TRACE_METRICS } from "./src/locate/trace.ts";
export type { TraceCorruption, TraceMetric } from "./src/locate/trace.ts";
export {
  corruptionNoise,
  embeddingGaussian,
  NOISE_DISTS,
  replacementCandidates,
  subjectReplacement,
} from "./src/locate/corruption.ts";
export type { EmbeddingGaussian, NoiseDist, NoiseSpec } from "./src/locate/corruption.ts";
export { CLASS_POOLS, ClassAccumulator, TOKEN_CLASSES, tokenClassPositions } from "./src/locate/average.ts";
export type { ClassAverage, ClassPool } from "./src/locate/average.ts";
export { traceFacts } from "./src/locate/trace_facts.ts";
export type { FactOutcome, FactsTrace, NoiseLevel, TraceFactsOptions } from "./src/locate/trace_facts.ts";
export {
  defaultMemitWindow,
  factTokenClass,
  MEMIT_WINDOW,
  pickLayers,
  recommendedHparams,
  recommendLayers,
} from "./src/locate/recommend.ts";
export type {
  AieCurve,
  EasyEditMatch,
  LayerPick,
  Recommendation,
  RecommendOptions,
} from "./src/locate/recommend.ts";
export { EASYEDIT_FILES, easyEditFiles } from "./src/edit/easyedit_layers.ts";
export type { EasyEditFile } from "./src/edit/easyedit_layers.ts";
export {
  activationPatchingSweep,
  ATP_METRICS,
  ATP_SITE_KINDS,
  attributionPatching,
  DEFAULT_ATP_SITES,
  metricValue,
  spearman as atpSpearman,
} from "./src/locate/atp.ts";
export type {
  AtpMetric,
  AtpOptions,
  AtpResult,
  AtpSiteKind,
  AtpSiteResult,
  SweepOptions,
} from "./src/locate/atp.ts";
export { attributionPatchingRef } from "./src/reference/atp.ts";
export { compareAtpWithPatching } from "./src/locate/atp_compare.ts";
export type { AtpCompareOptions, AtpComparison, AtpKindAgreement } from "./src/locate/atp_compare.ts";

// Types that appear in the signatures exported above (deno doc --lint: no private types in public APIs).
export type { RankedNeurons } from "./src/attribute/bridges.ts";
export type { StudyNaOptions } from "./src/attribute/study.ts";
export type { AppliedDeltas } from "./src/edit/apply.ts";
export type { FactToken } from "./src/edit/compute.ts";
export type { SymmetricEigen } from "./src/edit/eigen.ts";
export type { FtProgress } from "./src/edit/ft.ts";
export type { CommonHparams, MemitHparams, RomeHparams } from "./src/edit/hparams.ts";
export type { EditLog, EditLogJson } from "./src/edit/log.ts";
export type { NasResult } from "./src/edit/nas.ts";
export type { LayerStats, StatsAccumulation, StatsCorpus, StatsOptions } from "./src/edit/stats.ts";
export type { EasyEditCase, EasyEditPhase } from "./src/evaluate/easyedit_format.ts";
export type {
  AnswerScore,
  CaseResult,
  CaseScoresWild,
  EvalOptions,
  PreEdit,
  ScoreItem,
  ScoreOptions,
} from "./src/evaluate/edit_metrics.ts";
export type {
  CaseEdit,
  CaseEditContext,
  CaseObjective,
  CaseProgress,
  CaseTrace,
  KindSummary,
  PromptProbs,
} from "./src/evaluate/localization/case.ts";
export type { FtObjectiveOptions } from "./src/evaluate/localization/ft_objective.ts";
export type { FTest } from "./src/evaluate/localization/regression.ts";
export type { EditScores } from "./src/evaluate/localization/scores.ts";
export type {
  LayerScores,
  RegressionRow,
  Regressor,
  ScoreMetric,
} from "./src/evaluate/localization/summary.ts";
export type { PerplexityResult } from "./src/evaluate/perplexity.ts";
export type { PunktParams } from "./src/evaluate/punkt.ts";
export type { Column } from "./src/evaluate/report.ts";
export type { WeightNorm } from "./src/evaluate/sequential.ts";
export type { WildAnswer, WildOptions } from "./src/evaluate/wild.ts";
export type { DType, TensorOptions } from "./src/gpu/tensor.ts";
export type { ModelType } from "./src/io/hf_config.ts";
export type { HFModel, LoadHFModelOptions, SaveHFModelInput } from "./src/io/hf_model.ts";
export type { NpyArray, Npz } from "./src/io/npz.ts";
export type { NpyValue } from "./src/io/npz_write.ts";
export type {
  SafetensorsFile,
  SafetensorsTensor,
  SerializeOptions,
  TensorsToWrite,
  WeightDtype,
} from "./src/io/safetensors.ts";
export type { LoadTokenizerOptions } from "./src/io/tokenizer.ts";
export type { FactsCorruption } from "./src/locate/trace_facts.ts";
export type { TraceRefOptions, TraceRefResult } from "./src/locate/trace_ref.ts";
export type { GpuLinear, GpuNorm, GpuRope, QkStats } from "./src/model/layers.ts";
export type { RandomGPT2Options } from "./src/model/random.ts";
export type { GpuLayer, LayerActivations, SavedForward } from "./src/model/transformer.ts";
export type {
  AtpMetricRef,
  AtpRefOptions,
  AtpRefSite,
  PatchableForwardRef,
  RefSitePatch,
} from "./src/reference/atp.ts";
export type { RefForwardOptions, RefForwardResult, RefHooks, RefPatchFn } from "./src/reference/gpt2.ts";
export type { AieLineSpec } from "./src/report/aie_plot.ts";
export type { Series } from "./src/report/curves.ts";
export type { HeatmapSpec, TokenNames, TraceHeatmapInput } from "./src/report/heatmap.ts";
export type { FactsJson, Figures, TraceKindJson } from "./src/report/reports.ts";
export type { TrainingInstance } from "./src/train/corpus.ts";
export { easyEditCases, easyEditSummary } from "./src/evaluate/easyedit_format.ts";
export { REGRESSORS, SCORE_METRICS } from "./src/evaluate/localization/summary.ts";
export { SUPPORTED_MODEL_TYPES } from "./src/io/hf_config.ts";
export { encodeNpy, encodeNpz } from "./src/io/npz_write.ts";
export { aieLineSvg } from "./src/report/aie_plot.ts";
export { averageHeatmapSvg, heatmapSvg, romeCaseOf, traceHeatmapSvg } from "./src/report/heatmap.ts";
export { aieLinesSvg } from "./src/report/lines.ts";
export { svgToPng } from "./src/report/png.ts";
export { evalReportHtml, factsReportHtml, traceReportHtml } from "./src/report/reports.ts";
export {
  decodeRomeCase,
  encodeRomeCase,
  readRomeCase,
  replotCase,
  type RomeCase,
} from "./src/report/rome_case.ts";
export {
  INPUT_SCHEMA_NAMES,
  jsonSchema,
  OUTPUT_SCHEMA_NAMES,
  validateInput,
  validateOutput,
} from "./src/schema/mod.ts";
export type { InputWhere } from "./src/schema/validate.ts";
export type { EvalRunResult } from "./src/evaluate/report.ts";
export { InputSchemaError, jsonPath } from "./src/schema/validate.ts";
