"""A small English grammar that generates varied, well-formed sentences for the built-in corpus."""

from __future__ import annotations

import random

NOUNS = """
apple animal answer arm army artist baby bag ball band bank bar basket bath beach bean bear bed bee bell
belt bench bicycle bird birthday blanket boat body bone book boot bottle bowl box boy brain bread
breakfast brick bridge brother brush bucket building bus butter button cabin cake camera camp candle
candy cap captain car card carpet carrot castle cat cave chair chalk cheese chicken child chimney church
circle city class clock cloud coat coffee coin collar comb computer cook corn corner cottage country
cousin cow crab cradle cream crowd crown cup curtain cushion daughter deer desk diamond dinner doctor
dog doll dolphin donkey door dragon drawer dream dress drum duck eagle earth egg elephant engine
envelope eye face factory fairy family farm farmer father feather fence field finger fire fish flag
flower fog folder foot forest fork fountain fox friend frog fruit game garage garden gate ghost giant
gift girl glass glove goat gold grandfather grandmother grape grass guitar hair hall hammer hand harbor
hat hill holiday horse hospital hotel house island jacket jar jelly jewel judge juice kettle key king
kitchen kite kitten knife ladder lake lamp lawyer leaf lemon letter library lion lizard lock lunch
machine magnet map market meadow meal medal melon mirror monkey moon morning mother mountain mouse mouth
museum needle nest newspaper night nurse ocean office onion orange oven owl painter palace pan paper
parcel park parrot party pasta path pearl pencil penguin pepper piano picture pie pig pillow pilot pipe
planet plate pocket poem police pond potato pot present prince princess puppy puzzle queen rabbit radio
rain rainbow ribbon rice river road robot rock roof room rope rose sailor salad sand sandwich saucer
scarf school scissors sea seat secret seed shadow sheep shelf shell ship shirt shoe shop shoulder singer
sister skirt sky snail snake snow soap sock sofa soldier song soup spider spoon square squirrel stair
star station statue stick stone storm story stove stream street student sugar suitcase summer sun supper
swan sweater table tail teacher teapot telephone tent thread throne ticket tiger toast tomato tongue
tool tooth towel tower town toy tractor train tree truck trumpet tunnel turtle umbrella uncle valley van
vase village violin wagon wall wallet watch water wave whale wheel whistle window wing winter wizard
wolf woman wood worm writer yard zebra album anchor apron arrow attic badge bakery balloon bandage barn
barrel beard beetle blossom bonnet bracelet branch bubble buffalo cabbage canoe canvas cart chain cherry
chest cliff clown compass cookie costume crayon cricket cupboard dentist diary engineer fabric ferry
festival fiddle giraffe glacier goose hedge helmet honey iron journal kangaroo lantern leopard lobster
locket magician mailbox mango marble mask mattress merchant microscope mitten moth mushroom napkin
necklace noodle oar orchard ostrich oyster paddle pancake panda peach peanut pebble pelican pirate plum
pumpkin quilt raft raven recipe saddle sailboat satellite scooter shovel skeleton sled spinach sponge
stamp sunflower surgeon sword telescope thimble thunder tortoise trophy tulip violet walnut wardrobe
waterfall
""".split()

VERBS = """
accept admire answer arrange bake balance borrow bring brush build buy call carry catch chase check
choose clean climb close collect cook copy count cover cross cut deliver describe design discover draw
drink drive drop eat enjoy examine explain fetch fill find finish fix fold follow forget gather give
grab guard guide help hide hold hug improve inspect invite join keep kick kiss lift like listen load
lock love make measure mend miss move need notice open order organize pack paint pass pay pick plant
play polish pour prepare protect pull push reach read remember repair return ride save search see sell
send share show sing sketch smell sort spend spill squeeze steal stir study taste teach tell test throw
touch trade train understand unlock use visit want wash watch wear weigh wrap write admit announce
approve attack avoid bless boil bury calculate capture celebrate chew comfort compare crack crush
decorate defend delay destroy dig dislike divide drag dry earn embrace escape expect feed fear float
freeze frighten grow hammer hang heat hunt ignore imagine inform juggle knit knock launch lead lend lick
light melt mix nail obey offer own peel photograph pinch plan pray present print punish question raise
recognize record release remove rescue respect rinse roll rub scatter scrub shake shelter sign signal
slice smash sniff solve spray stack stamp start steer stretch strike suggest supply support surprise
switch tame thank tickle tie toss tow trace treat trust twist unpack wake warn welcome whisper wipe
""".split()

ADJECTIVES = """
able angry bad beautiful big bitter black blue bold brave bright broad broken brown busy calm careful
cheap cheerful clean clever cold colorful comfortable cool crazy curious dark deep delicious dirty dry
dusty eager early easy elegant empty enormous excellent expensive faint fair famous fancy fast fat
fierce fine flat fluffy foolish fresh friendly frozen full funny gentle giant glad golden good graceful
grand gray great green grumpy handsome happy hard healthy heavy helpful high hollow honest hot huge
hungry icy important jolly kind large late lazy light little lively lonely long loud lovely low lucky
magic mighty modern narrow nasty neat nervous new nice noisy odd old orange plain pleasant polite poor
pretty proud purple quick quiet rapid rare red rich ripe rough round rusty sad salty scary sharp shiny
short shy silent silly simple slim slow small smart smooth soft sour spicy square steep sticky strange
strict strong sunny sweet tall tame tender terrible thick thin thirsty tidy tiny tired tough ugly warm
weak wet white wide wild windy wise wooden yellow young ancient awkward blank bumpy chilly crooked
crowded curly fragile fuzzy gigantic gloomy greasy hairy harsh humble itchy juicy marvelous massive
muddy mysterious patient peaceful precious prickly rotten sandy scruffy shallow sleepy slippery
sparkling splendid spotted striped swift tangled tricky vast velvet wicked wrinkled zealous
""".split()

ADVERBS = """
again always carefully quickly slowly quietly loudly happily sadly gently suddenly easily eagerly
bravely calmly early later proudly softly badly rarely often never sometimes finally secretly politely
honestly nervously patiently silently warmly wisely cheerfully boldly swiftly lazily neatly
""".split()

NAMES = """
adam alice amy anna arthur bella ben carl charlie chloe daniel david diana edward ella emily emma frank
george grace hannah harry helen henry isaac jack jacob james jane jason jenny john julia kate kevin
laura leo lily lucy luke maria mark martin mary max mia nancy nathan nick noah oliver olivia oscar paul
peter rachel robert rose ruby sam sarah simon sophie steven susan thomas tom victor william zoe
""".split()

PREPOSITIONS = """
above across after against along around behind below beneath beside by for from into near under with
without inside outside over through toward
""".split()
SUBJECT_PRONOUNS = ["i", "you", "we", "they", "he", "she"]
OBJECT_PRONOUNS = ["it", "them", "him", "her", "us", "me"]
DETERMINERS = """
the a this that every each my your his her our their one another
""".split()
MODALS = ["will", "can", "could", "should", "would", "must", "might", "may", "did not", "cannot", "will not"]
TIMES = [
    "today", "tomorrow", "yesterday", "tonight", "every morning", "every evening", "at noon",
    "last week", "next week", "on monday", "on friday", "in the spring", "in the autumn", "before dinner",
    "after school", "at midnight", "once a year", "all day", "this afternoon", "right now",
]  # fmt: skip
QUESTION_WORDS = ["why", "where", "when", "how"]


def vocabulary() -> set[str]:
    """Every word a generated sentence can contain."""
    phrases = [*MODALS, *TIMES, *QUESTION_WORDS, "and", "so", "but", "because", "while", "then"]
    lists = [NOUNS, VERBS, ADJECTIVES, ADVERBS, NAMES, PREPOSITIONS, SUBJECT_PRONOUNS, OBJECT_PRONOUNS]
    return {word for group in [*lists, DETERMINERS, phrases] for phrase in group for word in phrase.split()}


class SentenceGenerator:
    """Random sentences of 5 to about 18 words; the same seed gives the same sentences."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def _pick(self, words: list[str]) -> str:
        return self.random.choice(words)

    def _noun_phrase(self) -> str:
        words = [self._pick(DETERMINERS)]
        if self.random.random() < 0.6:
            words.append(self._pick(ADJECTIVES))
        words.append(self._pick(NOUNS))
        return " ".join(words)

    def _subject(self) -> str:
        roll = self.random.random()
        if roll < 0.25:
            return self._pick(NAMES)
        if roll < 0.4:
            return self._pick(SUBJECT_PRONOUNS)
        return self._noun_phrase()

    def _object(self) -> str:
        roll = self.random.random()
        if roll < 0.15:
            return self._pick(NAMES)
        if roll < 0.25:
            return self._pick(OBJECT_PRONOUNS)
        return self._noun_phrase()

    def _clause(self) -> str:
        words = [self._subject(), self._pick(MODALS)]
        if self.random.random() < 0.2:
            words.append(self._pick(ADVERBS))
        words += [self._pick(VERBS), self._object()]
        if self.random.random() < 0.5:
            words += [self._pick(PREPOSITIONS), self._noun_phrase()]
        return " ".join(words)

    def sentence(self) -> str:
        roll = self.random.random()
        if roll < 0.15:
            modal = self._pick(["will", "can", "could", "should", "would", "did"])
            words = [self._pick(QUESTION_WORDS), modal, self._subject(), self._pick(VERBS), self._object()]
        elif roll < 0.35:
            conjunction = self._pick(["and", "so", "but", "because", "while", "then"])
            words = [self._clause(), conjunction, self._clause()]
        else:
            words = [self._clause()]
        if self.random.random() < 0.3:
            words.append(self._pick(TIMES))
        return " ".join(words)
