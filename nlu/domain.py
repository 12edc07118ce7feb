"""MaxEnt domain classifier: the first stage of a domain -> intent -> slots NLU pipeline.

A multinomial logistic regression (maximum entropy) over TF-IDF word 1-2-grams and character
2-4-grams (within word boundaries, so it also works for unsegmented Chinese and Japanese).
The target domain of a training utterance is, in order: its ``domain`` field, the
``domain_map`` entry for its intent, or the prefix of a hierarchical intent name
(``alarm/set_alarm`` -> ``alarm``; see ``nlu.utterance.domain_of``). Flat Snips intents are
their own domain unless mapped; ``SNIPS_DOMAINS`` groups them by topic.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

from nlu.atomic import atomic_open
from nlu.utterance import Utterance, domain_of

# Snips' seven intents grouped by topic; GetWeather joins the Facebook ``weather`` domain.
SNIPS_DOMAINS: dict[str, str] = {
    "AddToPlaylist": "music",
    "PlayMusic": "music",
    "BookRestaurant": "restaurant",
    "GetWeather": "weather",
    "RateBook": "creative_work",
    "SearchCreativeWork": "creative_work",
    "SearchScreeningEvent": "movies",
}


class DomainClassifier:
    """Logistic regression on word + character n-grams that predicts an utterance's domain."""

    def __init__(self, *, domain_map: Mapping[str, str] | None = None,
                 regularisation: float = 10.0, max_iter: int = 1000):
        self.domain_map = dict(domain_map or {})
        self.regularisation = regularisation  # sklearn's C: larger = weaker L2 penalty
        self.max_iter = max_iter
        self.pipeline = None

    def domain(self, utterance: Utterance) -> str:
        """The training target for ``utterance`` (see module docstring for the order)."""
        if utterance.domain:
            return utterance.domain
        return self.domain_map.get(utterance.intent, domain_of(utterance.intent))

    @staticmethod
    def _texts(utterances: Sequence[Utterance]) -> list[str]:
        return [" ".join(utterance.tokens) for utterance in utterances]

    def fit(self, utterances: Sequence[Utterance]) -> "DomainClassifier":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline

        domains = [self.domain(utterance) for utterance in utterances]
        if len(set(domains)) < 2:
            raise ValueError(f"need at least two domains to train on, got {sorted(set(domains))}")
        features = FeatureUnion([
            # tokens are already split: a word is any run of non-space characters
            ("words", TfidfVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=(1, 2),
                                      sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)),
        ])
        self.pipeline = Pipeline([
            ("features", features),
            ("maxent", LogisticRegression(C=self.regularisation, max_iter=self.max_iter)),
        ])
        self.pipeline.fit(self._texts(utterances), domains)
        return self

    @property
    def domains(self) -> list[str]:
        return list(self._fitted().classes_)

    def _fitted(self):
        if self.pipeline is None:
            raise RuntimeError("the domain classifier is not trained: call fit() first")
        return self.pipeline

    def predict(self, utterances: Sequence[Utterance]) -> list[str]:
        return list(self._fitted().predict(self._texts(utterances)))

    def accuracy(self, utterances: Sequence[Utterance]) -> dict[str, float]:
        """Domain accuracy overall (key ``"all"``) and per language."""
        right: dict[str, list[bool]] = defaultdict(list)
        for utterance, predicted in zip(utterances, self.predict(utterances)):
            is_right = predicted == self.domain(utterance)
            right["all"].append(is_right)
            right[utterance.language].append(is_right)
        return {group: sum(values) / len(values) for group, values in right.items()}

    def save(self, path: Path | str) -> None:
        """Pickle the fitted classifier with joblib, atomically."""
        import joblib

        self._fitted()
        with atomic_open(path, "wb") as stream:
            joblib.dump(self, stream)

    @classmethod
    def load(cls, path: Path | str) -> "DomainClassifier":
        """Load a classifier written by ``save`` (joblib pickle: only load files you trust)."""
        import joblib

        classifier = joblib.load(path)
        if not isinstance(classifier, cls):
            raise TypeError(f"{path} holds a {type(classifier).__name__}, not a {cls.__name__}")
        return classifier
